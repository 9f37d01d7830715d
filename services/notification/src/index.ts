import { runService } from '@shared/serve.ts';
import { definition } from './service.ts';

await runService(definition, process.env);
