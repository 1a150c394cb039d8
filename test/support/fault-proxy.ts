/**
 * A TCP proxy on 127.0.0.1 for fault injection: tests point DATABASE_URL or
 * REDIS_URL at it and then cut the link.
 *
 * - "reset": every open connection is reset now; new ones are forwarded.
 * - "refuse": open connections are reset and new ones are refused (closed at once).
 * - "silent": a partition. Open connections stay open but nothing crosses any
 *   more, in either direction, ever (bytes are dropped); new connections are
 *   accepted and go nowhere. heal() lets new connections through again; the
 *   silent ones stay dead until their client gives up on them, as after a
 *   real failover.
 */
import net from "node:net";

export type FaultMode = "pass" | "refuse" | "silent";

export interface FaultProxy {
  port: number;
  /** host:port of the proxy, for URLs. */
  address: string;
  mode: FaultMode;
  /** Connections currently open through the proxy (client side). */
  readonly openConnections: number;
  reset(): void;
  refuse(): void;
  silence(): void;
  heal(): void;
  close(): Promise<void>;
}

interface Link {
  client: net.Socket;
  upstream: net.Socket | null;
  silent: boolean;
}

export async function startFaultProxy(target: { host?: string; port: number }): Promise<FaultProxy> {
  const links = new Set<Link>();
  let mode: FaultMode = "pass";

  const drop = (link: Link) => {
    links.delete(link);
    link.client.destroy();
    link.upstream?.destroy();
  };
  const resetAll = () => {
    for (const link of [...links]) {
      if (!link.client.destroyed) link.client.resetAndDestroy();
      link.upstream?.destroy();
      links.delete(link);
    }
  };

  const server = net.createServer((client) => {
    const link: Link = { client, upstream: null, silent: false };
    client.on("error", () => drop(link));
    client.on("close", () => drop(link));
    if (mode === "refuse") {
      client.resetAndDestroy();
      return;
    }
    links.add(link);
    if (mode === "silent") {
      link.silent = true;
      client.on("data", () => undefined); // read and drop
      return;
    }
    const upstream = net.connect({ host: target.host ?? "127.0.0.1", port: target.port });
    link.upstream = upstream;
    upstream.on("error", () => drop(link));
    upstream.on("close", () => drop(link));
    client.on("data", (chunk) => {
      if (!link.silent) upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (!link.silent) client.write(chunk);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    address: `127.0.0.1:${port}`,
    get mode() {
      return mode;
    },
    get openConnections() {
      return links.size;
    },
    reset() {
      resetAll();
    },
    refuse() {
      mode = "refuse";
      resetAll();
    },
    silence() {
      mode = "silent";
      for (const link of links) link.silent = true;
    },
    heal() {
      mode = "pass";
    },
    async close() {
      mode = "refuse";
      resetAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
