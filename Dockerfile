# kommo-import and kommo-sim in one small image (docker-compose.yml runs both from it).
#   docker build -t kommo-import .
# .dockerignore keeps the git history, bin/ and exports (*.jsonl, *.csv, *.gz
# outside testdata/) out of the build context that "COPY . ." sends.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The git history stays out of the context: give the version as a build argument,
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t kommo-import .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/kommo-import/kommo-import/cmd/kommo-import/cli.Version=${VERSION}" \
    -o /out/ ./cmd/kommo-import ./cmd/kommo-sim \
 && mkdir -p /out/ledger

# distroless: no shell, no package manager; runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kommo-import /out/kommo-sim /usr/local/bin/
# kommo-sim's ledger directory, owned by the image's user so a named volume
# mounted there (docker-compose.yml) is writable.
COPY --from=build --chown=65532:65532 /out/ledger /ledger
ENTRYPOINT ["/usr/local/bin/kommo-import"]
