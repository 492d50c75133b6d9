// A scripted WebSocket server for the client library's tests: it greets
// each connection as a given user and hands every client frame to a
// function that answers what the test wants.
import { WebSocketServer } from 'ws';

/**
 * fakeServers returns start(user, onFrame), which starts a fake server and
 * resolves with {url, frames} (every client frame received, parsed), and
 * closeAll(), which ends the servers started since the last closeAll. The
 * socket handed to onFrame has out(...frames), sending frames joined with
 * '\n' as the server batches them.
 */
export function fakeServers() {
  let servers = [];
  return {
    async start(user, onFrame) {
      const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
      await new Promise((r) => wss.on('listening', r));
      servers.push(wss);
      const frames = [];
      wss.on('connection', (ws) => {
        ws.out = (...fs) => ws.send(fs.map((f) => JSON.stringify(f)).join('\n'));
        ws.out({ type: 'welcome', session: 's1', user, node: 'fake', protocol: 1 });
        ws.on('message', (d) => {
          const f = JSON.parse(String(d));
          frames.push(f);
          onFrame(f, ws);
        });
      });
      return { url: `ws://127.0.0.1:${wss.address().port}/ws`, frames };
    },
    async closeAll() {
      for (const s of servers) {
        for (const ws of s.clients) ws.terminate();
        await new Promise((r) => s.close(r));
      }
      servers = [];
    },
  };
}
