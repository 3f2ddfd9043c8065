// A TCP proxy on 127.0.0.1 in front of one livebase process at a time, so that a
// client keeps its URL while the process behind it changes (as behind a load
// balancer). Each connection goes to the process the proxy points at when it
// arrives; either side closing closes the other.

import { once } from 'node:events';
import net from 'node:net';

export class TcpProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.pairs = new Set();
    /** Every connection accepted, in order: `{targetPort}` (the process it went to). */
    this.accepted = [];
    this.server = net.createServer((client) => this.#accept(client));
  }

  static async start(targetPort) {
    const proxy = new TcpProxy(targetPort);
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    proxy.port = proxy.server.address().port;
    proxy.url = `http://127.0.0.1:${proxy.port}`;
    return proxy;
  }

  /** New connections go to the process on `port`; open ones stay where they are. */
  pointAt(port) {
    this.targetPort = port;
  }

  #accept(client) {
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    const pair = { client, upstream };
    this.pairs.add(pair);
    this.accepted.push({ targetPort: this.targetPort });
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', () => {
        if (!pair.lost || socket === upstream) end();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /**
   * Lose every open connection as a dead network does: the clients' side closes,
   * the processes' side stays open and silent until they close it themselves.
   */
  loseAll() {
    for (const pair of this.pairs) {
      pair.lost = true;
      pair.client.unpipe(pair.upstream);
      pair.upstream.unpipe(pair.client);
      pair.upstream.resume(); // what the process still sends goes nowhere
      pair.client.destroy();
    }
  }

  /**
   * Cut every open connection on both sides, as a peer that hangs up does: the
   * clients and the processes both see it closed at once. The proxy goes on accepting.
   */
  cutAll() {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Stop accepting and cut every open connection. */
  async close() {
    const closed = once(this.server, 'close');
    this.server.close();
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
    await closed;
  }
}
