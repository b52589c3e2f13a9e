// The load generator of the server benches: HTTP/1.1 keep-alive through one `http.Agent` per
// cell (maxSockets = its clients) and `http.request`. Not fetch: fetch (undici) read ~4.6× lower
// from the same server on this machine, so it measured the client. The same client drives
// tspaxos and etcd, so their ratio compares the servers.
import http from 'node:http';

/** Host and port of a base URL, parsed once (a request only adds its path). */
export function endpoint(url) {
  const u = new URL(url);
  return { hostname: u.hostname, port: Number(u.port) };
}

/**
 * A keep-alive client with at most `maxSockets` connections per host. `request(target, path,
 * { method, body, headers })` resolves with `{ status, ok, body }` (body a Buffer) once the
 * response is read; it rejects on a refused or reset connection.
 */
export function httpClient(maxSockets) {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  const request = (target, path, { method = 'GET', body, headers = {} } = {}) =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent,
          hostname: target.hostname,
          port: target.port,
          path,
          method,
          headers: body === undefined ? headers : { ...headers, 'content-length': body.length },
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () =>
            resolve({
              status: res.statusCode,
              ok: res.statusCode >= 200 && res.statusCode < 300,
              body: Buffer.concat(chunks),
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  return { request, close: () => agent.destroy() };
}

/**
 * Runs `clients` loops for `ms`, each awaiting `request(client, i)` (i counts every request
 * sent) through one keep-alive client of `clients` sockets. A 503 ("not applied, try again": an
 * election, a value handed back when a lease became live) is counted in `unavailable` and not
 * timed; any other answer but a 2xx (or 404 when `allow404`) fails the bench. Returns the
 * completed requests per second, p50 and p99 in ms, and the counts.
 */
export async function load(clients, request, ms, { allow404 = false } = {}) {
  const client = httpClient(clients);
  const latencies = [];
  let i = 0;
  let unavailable = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  try {
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (performance.now() < end) {
          const started = performance.now();
          const res = await request(client, i++);
          if (res.status === 503) {
            unavailable++;
            continue;
          }
          if (!res.ok && !(allow404 && res.status === 404))
            throw new Error(`HTTP ${res.status}: ${res.body.toString().slice(0, 300)}`);
          latencies.push(performance.now() - started);
        }
      }),
    );
  } finally {
    client.close();
  }
  const s = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
  const count = latencies.length;
  return { rate: count / s, p50: pct(0.5), p99: pct(0.99), count, unavailable };
}

/**
 * Sends `n` requests `request(client, i)` with `clients` concurrent loops; each must be a 2xx
 * in the end (a 503, not applied, is sent again after a short pause).
 */
export async function sendMany(n, clients, request) {
  const client = httpClient(clients);
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (;;) {
          const i = next++;
          if (i >= n) return;
          let res = await request(client, i);
          while (res.status === 503) {
            await new Promise((r) => setTimeout(r, 10));
            res = await request(client, i);
          }
          if (!res.ok) throw new Error(`HTTP ${res.status}: ${res.body.toString().slice(0, 300)}`);
        }
      }),
    );
  } finally {
    client.close();
  }
}
