# Seqline server image. Build: docker build -t seqline .
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/prisma ./prisma
COPY --from=build /app/apps/server/public ./apps/server/public
COPY --from=build /app/libs/client/dist/browser ./libs/client/dist/browser
COPY --from=build /app/apps/ai-sdk-chat/dist ./apps/ai-sdk-chat/dist
COPY package.json ./
EXPOSE 3000
USER node
CMD ["node", "dist/apps/server/src/main.js"]
