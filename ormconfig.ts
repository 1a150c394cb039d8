/**
 * Data source for the typeorm CLI (`npm run typeorm -- migration:show`).
 * The server builds its own from the same options in src/app.ts.
 */
import "reflect-metadata";
import { loadConfig } from "./src/config.js";
import { createDataSource } from "./src/db/data-source.js";
import { ENTITIES } from "./src/features.js";

const config = loadConfig(process.env);
export default createDataSource({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, entities: ENTITIES });
