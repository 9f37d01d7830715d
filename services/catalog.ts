/** The seven service definitions, gateway first; used by the standalone runner, tests and bench. */
import { definition as apiGateway } from './api-gateway/src/service.ts';
import { definition as fileManager } from './file-manager/src/service.ts';
import { definition as jobProcessor } from './job-processor/src/service.ts';
import { definition as monitoring } from './monitoring/src/service.ts';
import { definition as notification } from './notification/src/service.ts';
import { definition as serviceRegistry } from './service-registry/src/service.ts';
import { definition as userService } from './user-service/src/service.ts';
import type { ServiceDefinition } from '@shared/service.ts';

export const SERVICES: readonly ServiceDefinition[] = [
  apiGateway,
  userService,
  serviceRegistry,
  jobProcessor,
  fileManager,
  notification,
  monitoring,
] as ServiceDefinition[];
