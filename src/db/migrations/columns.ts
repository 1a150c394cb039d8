/**
 * Column shapes shared by the migrations, portable across SQLite and
 * PostgreSQL: ids are UUID strings, instants fixed-width ISO-8601 text
 * (see db/columns.ts). A shipped migration must keep producing the same
 * tables, so change these only by adding new shapes.
 */
export const idColumn = (name = "id") => ({ name, type: "varchar", length: "36", isPrimary: true });
export const refColumn = (name: string, nullable = false) => ({ name, type: "varchar", length: "36", isNullable: nullable });
export const instantColumn = (name: string, nullable = false) => ({ name, type: "varchar", length: "24", isNullable: nullable });
export const textColumn = (name: string, length: number, nullable = false) => ({
  name,
  type: "varchar",
  length: String(length),
  isNullable: nullable,
});
