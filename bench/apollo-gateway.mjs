// Apollo Gateway behind Apollo Server, one process (the same number of processes as every gateway).
import { readFileSync } from "node:fs";
import { ApolloServer } from "@apollo/server";
import { ApolloGateway } from "@apollo/gateway";
import { startStandaloneServer } from "@apollo/server/standalone";

const gateway = new ApolloGateway({ supergraphSdl: readFileSync(process.argv[2], "utf8") });
const server = new ApolloServer({ gateway });
const { url } = await startStandaloneServer(server, { listen: { host: "127.0.0.1", port: Number(process.argv[3] || 4000) } });
console.log(`apollo gateway ready at ${url}`);
