# kommo-import and kommo-sim in one small image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/kommo-import ./cmd/kommo-sim

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kommo-import /out/kommo-sim /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/kommo-import"]
