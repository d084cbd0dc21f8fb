import { toJsonSchema } from '@valibot/to-json-schema'
import { ConfigFileSchema } from './schema.ts'

/** The file's JSON Schema as committed in schema/bff-config.schema.json (2-space JSON, newline). */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(toJsonSchema(ConfigFileSchema), null, 2)}\n`
}
