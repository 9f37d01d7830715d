import { runService } from '@shared/serve.ts';
import { definition } from './service.ts';

// No top-level await: the container build compiles this entry to CommonJS bytecode.
void runService(definition, process.env);
