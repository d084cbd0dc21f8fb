/**
 * The config file's JSON Schema, generated from the valibot schema that validates it, so the two
 * cannot disagree. Build-time only: the package ships the generated file, not the generator.
 */
import { toJsonSchema } from '@valibot/to-json-schema'
import { ConfigFileSchema } from '../src/core/config/schema.ts'

/** The file's JSON Schema as committed in schema/bff-config.schema.json (2-space JSON, newline). */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(toJsonSchema(ConfigFileSchema), null, 2)}\n`
}
