/**
 * Writes schema/bff-config.schema.json from the valibot schema (src/core/config/schema.ts):
 * `npm run config:schema`. test/core/config/file.test.ts fails while the committed file is stale.
 */
import { writeFileSync } from 'node:fs'
import { configJsonSchemaText } from './config-json-schema.ts'

writeFileSync(new URL('../schema/bff-config.schema.json', import.meta.url), configJsonSchemaText())
