// Regenerates docs/subjects.md from the protocol catalog.
import { writeFileSync } from "node:fs";
import { renderSubjectsDoc } from "@sageserve/protocol";

const path = new URL("../docs/subjects.md", import.meta.url);
writeFileSync(path, renderSubjectsDoc());
console.log(`wrote ${path.pathname}`);
