// GET of a peer's JSON route (the members view polls /status) over http or https. Node's fetch
// cannot be given a CA or a client certificate without undici's Agent, so this uses node:https:
// a node trusts its peers' HTTPS with the CAs it was given (--client-ca, --peer-ca) and presents
// its own --cert when the peers require client certificates.
import * as http from 'node:http';
import * as https from 'node:https';

export interface PeerHttpOptions {
  ca?: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  /** Sent as `Authorization: Bearer` (peers with --auth-metrics). */
  token?: string;
  timeoutMs: number;
}

export function getJson(
  url: string,
  o: PeerHttpOptions,
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const headers = o.token === undefined ? {} : { authorization: `Bearer ${o.token}` };
    const onResponse = (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        try {
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString()),
          });
        } catch (error) {
          reject(error as Error);
        }
      });
    };
    const req =
      target.protocol === 'https:'
        ? https.get(
            target,
            {
              headers,
              ...(o.ca ? { ca: o.ca } : {}),
              ...(o.cert && o.key ? { cert: o.cert, key: o.key } : {}),
            },
            onResponse,
          )
        : http.get(target, { headers }, onResponse);
    req.setTimeout(o.timeoutMs, () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)));
    req.on('error', reject);
  });
}
