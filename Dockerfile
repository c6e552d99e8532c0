# syntax=docker/dockerfile:1
#
# docker build --build-arg VERSION=$(git describe --tags --always) -t sessionbot .
#
# The go build line must stay identical to the Makefile's `build` target (checked by
# deploy/validate_test.go): same flags, so a local build and the image are the same binary.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /sessionbot ./cmd/sessionbot

# Static binary on distroless: no shell, no package manager, no redis-cli; CA certificates and
# tzdata are included (Slack and PagerDuty are HTTPS).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /sessionbot /sessionbot
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/sessionbot"]
CMD ["serve"]
