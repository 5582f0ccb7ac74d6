// Socket.IO on Node.js, a peer of the chat fan-out benchmark (benchmarks/chat_fanout.py).
//
// The same thing as the python-socketio peer (benchmarks/fanout/servers.py): the
// client's connect (auth {user}) joins one room; each "say" event becomes one
// "message" event emitted to the room, with the same fields as our chat's message
// frame. WebSocket transport only, no compression, frames up to 16 KiB.
//
//   node server.js [--host H] [--port P]
//
// Prints "READY <port>" once it accepts connections; exits on SIGTERM or SIGINT.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const ROOM = "chat";
const MAX_FRAME_BYTES = 16 * 1024;
const BACKLOG = 4096;

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = option("--host", "127.0.0.1");
const port = Number(option("--port", "0"));
const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  perMessageDeflate: false,
  maxHttpBufferSize: MAX_FRAME_BYTES,
  serveClient: false,
});

let offset = 0;

io.use((socket, next) => {
  const user = socket.handshake.auth && socket.handshake.auth.user;
  if (typeof user !== "string" || user === "") {
    next(new Error("auth.user is required"));
  } else {
    socket.data.user = user;
    next();
  }
});

io.on("connection", (socket) => {
  socket.join(ROOM);
  socket.on("say", (data) => {
    const text = data && data.text;
    if (typeof text !== "string") return;
    offset += 1;
    io.to(ROOM).emit("message", {
      type: "message", offset, kind: "public", from: socket.data.user,
      to: null, text, replayed: false,
    });
  });
});

httpServer.on("error", (err) => {
  console.error(`erro: o servidor socketio-node não abriu ${host}:${port}: ${err.message}`);
  process.exit(1);
});
httpServer.listen({ host, port, backlog: BACKLOG }, () => {
  process.stdout.write(`READY ${httpServer.address().port}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    io.close();
    httpServer.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
