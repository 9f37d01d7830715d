/** Which uploads get the VCF pre-flight check: files named like VCFs. */
import type { ValidatorFor } from './domain.ts';
import { createVcfValidator } from './vcf-validator.ts';

const VCF_NAME = /\.vcf(\.b?gz)?$/i;

export const vcfValidatorFor: ValidatorFor = (name, declaredBuild) => (VCF_NAME.test(name) ? createVcfValidator({ declaredBuild }) : null);
