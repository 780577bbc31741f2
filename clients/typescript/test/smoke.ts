// Driven by functions/dispatch's TestTypeScriptClient against a real
// `dispatch serve`: it prints one JSON line of what it saw, and the Go test
// judges it together with the cluster's state.
import { configureDispatch, createDispatchClient, spawnBuildJob, cancelBuildJob, DispatchError } from "../src/index.js";

declare const process: { env: Record<string, string | undefined>; exitCode?: number };

async function main(): Promise<void> {
  const env = process.env;
  const input = {
    buildJobId: env.BUILD_ID!,
    installationId: BigInt(env.INSTALLATION_ID!),
    repoOwner: env.REPO_OWNER!,
    repoName: env.REPO_NAME!,
    commitSha: env.COMMIT!,
    imageTag: env.IMAGE_TAG!,
    rootDirectory: "apps/web",
    buildCommand: "npm ci\nnpm run build",
    startCommand: null,
  };
  const out: Record<string, unknown> = {};
  out.created = await spawnBuildJob(input); // AF_DISPATCH_URL, AF_DISPATCH_API_SECRET
  out.repeated = await spawnBuildJob(input);
  try {
    await spawnBuildJob({ ...input, commitSha: "7638417db6d59f3c431d3e1f261cc637155684cd" });
    out.conflict = "accepted";
  } catch (e) {
    out.conflict = e instanceof DispatchError ? { status: e.status, fields: e.fields } : String(e);
  }
  const wrong = createDispatchClient({ baseUrl: env.AF_DISPATCH_URL!, secret: "not-the-secret-0123456789abcdef0123" });
  try {
    await wrong.spawnBuildJob({ ...input, buildJobId: input.buildJobId + "-x" });
    out.badSignature = "accepted";
  } catch (e) {
    out.badSignature = e instanceof DispatchError ? { status: e.status } : String(e);
  }
  configureDispatch({ baseUrl: env.AF_DISPATCH_URL!, secret: env.AF_DISPATCH_API_SECRET! });
  out.canceled = await cancelBuildJob(input.buildJobId);
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
