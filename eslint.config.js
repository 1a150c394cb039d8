// ESLint (flat config) with typescript-eslint: `npm run lint`, run by .ci/run.
// The rules: typescript-eslint's recommended set, plus the ones that catch
// what bites an async server: promises nobody awaits, awaits of non-promises,
// and promises passed where a callback's result is ignored.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", "web/dist/", "data/", "**/*.mjs", "eslint.config.js"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Type-aware rules where a tsconfig covers the files (tests and vitest.config.ts have none).
    files: ["src/**/*.ts", "scripts/**/*.ts", "bench/**/*.ts", "ormconfig.ts", "web/**/*.tsx"],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false, attributes: false } }],
    },
  },
  {
    files: ["**/*.ts", "**/*.tsx"],
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      "@typescript-eslint/no-explicit-any": "error",
      // type-graphql resolvers are registered by class: Function is the type it takes.
      "@typescript-eslint/no-unsafe-function-type": "off",
      eqeqeq: ["error", "always", { null: "ignore" }],
      "no-console": "off",
    },
  },
  {
    // Tests and benchmarks: fixtures may be loose, but promises still must be awaited.
    files: ["test/**/*.ts", "bench/**/*.ts"],
    rules: {
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-explicit-any": "off",
      // Tests check that control characters never reach logs and emails.
      "no-control-regex": "off",
    },
  },
);
