// Regenerates docs/subjects.md from the protocol catalog, and the role permissions table of
// docs/security.md from packages/nats/src/nats-permissions.ts.
import { readFileSync, writeFileSync } from "node:fs";
import { updatePermissionsDoc } from "@sageserve/nats";
import { renderSubjectsDoc } from "@sageserve/protocol";

const path = new URL("../docs/subjects.md", import.meta.url);
writeFileSync(path, renderSubjectsDoc());
console.log(`wrote ${path.pathname}`);
const security = new URL("../docs/security.md", import.meta.url);
writeFileSync(security, updatePermissionsDoc(readFileSync(security, "utf8")));
console.log(`wrote ${security.pathname}`);
