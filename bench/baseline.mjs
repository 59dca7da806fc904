// The bench's limit: receives a request, answers 202 and forwards the body to the sink, with no
// durability, routing or retries. Every Herald figure is reported as a ratio to this.
import { createServer } from 'node:http';
import { Agent, request } from 'undici';

const sink = process.argv[2];
const agent = new Agent({ connections: 32 });
let next = 0;
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString();
    res.writeHead(202, { 'content-type': 'application/json' });
    res.end(`{"id":"${++next}"}`);
    const events = req.headers['content-type']?.includes('batch') ? JSON.parse(body) : [body];
    for (const e of events) {
      const payload = typeof e === 'string' ? e : JSON.stringify(e);
      request(sink, {
        method: 'POST',
        body: payload,
        headers: { 'content-type': 'application/json' },
        dispatcher: agent,
      })
        .then((r) => r.body.dump())
        .catch(() => {});
    }
  });
});
server.listen(0, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
