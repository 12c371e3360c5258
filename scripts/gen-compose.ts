// Regenerates docker-compose.yml from the cluster description (the services `sageserve up` starts).
import { writeFileSync } from "node:fs";
import { renderCompose } from "@sageserve/cli";

const path = new URL("../docker-compose.yml", import.meta.url);
writeFileSync(path, renderCompose());
console.log(`wrote ${path.pathname}`);
