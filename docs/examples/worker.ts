export { default, SessionObject, SessionIndexObject } from 'bff-session-broker/workers'
