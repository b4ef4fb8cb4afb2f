# One image per service, built from the repository root (the build context must include
# go.work, libs/ and services/):
#   docker build --build-arg SERVICE=tasks -t registry.perpetua.example/tasks:0.1.0 .
# The binary is static (CGO off) and runs as the distroless "nonroot" user (65532) on a
# read-only root filesystem; `migrate` as its first argument applies the migrations.
FROM golang:1.26 AS build
ARG SERVICE
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath GOPROXY=https://proxy.golang.org
COPY go.work ./
COPY libs/go.mod libs/go.sum libs/
COPY services/${SERVICE}/go.mod services/${SERVICE}/go.sum services/${SERVICE}/
RUN cd services/${SERVICE} && GOWORK=off go mod download
COPY libs/ libs/
COPY services/${SERVICE}/ services/${SERVICE}/
RUN cd services/${SERVICE} && GOWORK=off go build -ldflags="-s -w" -o /out/service .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/service /service
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/service"]
