/**
 * A fixed set of PKCS#11 sessions. One node-webcrypto-p11 Crypto is one
 * PKCS#11 session, and a session runs one operation at a time (concurrent
 * signs fail with CKR_OPERATION_ACTIVE): each session serves one operation
 * at a time, callers queue for the next free session (FIFO), and up to
 * `sessions.length` operations run in parallel.
 */
import type { Crypto as P11Crypto } from "node-webcrypto-p11";

export class SessionPool {
  private readonly free: P11Crypto[];
  private readonly waiters: Array<(session: P11Crypto) => void> = [];

  constructor(readonly sessions: readonly P11Crypto[]) {
    this.free = [...sessions];
  }

  async run<T>(operation: (session: P11Crypto) => Promise<T>): Promise<T> {
    const session = this.free.pop() ?? (await new Promise<P11Crypto>((resolve) => this.waiters.push(resolve)));
    try {
      return await operation(session);
    } finally {
      const next = this.waiters.shift();
      if (next) next(session);
      else this.free.push(session);
    }
  }

  /** Runs `operation` once every session is idle (used by close). */
  async drain(): Promise<void> {
    await Promise.all(this.sessions.map(() => this.run(async () => undefined)));
  }
}
