/** `npm start`: read the configuration, start the server, stop gracefully on SIGTERM/SIGINT. */
import "reflect-metadata";
import { createApp } from "./app.js";
import { ConfigError, loadConfig } from "./config.js";

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env, process.cwd(), process.stdout.isTTY === true);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`keyportal: invalid configuration: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const app = await createApp(config);
  await app.start();
  let shuttingDown = false;
  const shutdown = (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    app.logger.info({ signal }, "shutting down");
    const force = setTimeout(() => {
      app.logger.error("shutdown took longer than 15 s; exiting");
      process.exit(1);
    }, 15_000);
    force.unref();
    app
      .stop()
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        app.logger.error({ err: error }, "error during shutdown");
        process.exit(1);
      });
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((error: unknown) => {
  process.stderr.write(`keyportal: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
