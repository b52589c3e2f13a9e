import { defineConfig, mergeConfig } from 'vitest/config';
import { sharedTestConfig } from '../../vitest.shared.ts';

// Process-level tests start several node processes each: one file at a time, or a 2-core machine
// spends its time switching between clusters.
export default mergeConfig(sharedTestConfig, defineConfig({ test: { fileParallelism: false } }));
