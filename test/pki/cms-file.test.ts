import { describe } from "vitest";
import { available } from "../support/deps.js";
import { FileKeyStore } from "../../src/pki/keystore/index.js";
import { defineCmsSuite } from "./cms-suite.js";

describe.skipIf(!(await available("openssl")))("file key store", () => {
  defineCmsSuite("FileKeyStore", async (dir) => new FileKeyStore({ dir: `${dir}/keys` }));
});
