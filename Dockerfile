# Switchboard: a static binary (web client embedded) on a distroless base,
# run as the image's non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /switchboard ./cmd/switchboard

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /switchboard /switchboard
EXPOSE 8080
USER nonroot
# No shell in the image: the binary checks its own /readyz (on the port of
# $SWITCHBOARD_ADDR, 8080 by default).
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/switchboard", "healthcheck"]
ENTRYPOINT ["/switchboard"]
