// Child process of the transport benchmark: receives frames (through TcpNetwork, or raw
// length-prefixed frames over node:net) and tells the parent when it has `expect` of them.
import * as net from 'node:net';
import { TcpNetwork } from '../dist/tcp.js';

process.on('message', async (cmd) => {
  if (cmd.type === 'tcp') {
    let got = 0;
    const n = new TcpNetwork({
      nodeId: 2,
      clusterId: 'bench',
      listen: { host: '127.0.0.1', port: 0 },
      peers: { 1: { host: '127.0.0.1', port: 1 } },
    });
    n.onMessage(() => {
      if (++got === cmd.expect) {
        process.send({ type: 'done' });
        got = 0;
      }
    });
    const addr = await n.start();
    process.send({ type: 'ready', port: addr.port });
  } else if (cmd.type === 'raw') {
    const server = net.createServer((socket) => {
      let got = 0;
      let pending = Buffer.alloc(0);
      socket.on('data', (d) => {
        pending = pending.length ? Buffer.concat([pending, d]) : d;
        let at = 0;
        while (pending.length - at >= 4) {
          const len = pending.readUInt32LE(at);
          if (pending.length - at < len + 4) break;
          at += len + 4;
          if (++got === cmd.expect) {
            process.send({ type: 'done' });
            got = 0;
          }
        }
        pending = pending.subarray(at);
      });
    });
    server.listen(0, '127.0.0.1', () =>
      process.send({ type: 'ready', port: server.address().port }),
    );
  }
});
