# One build, two images (the same binaries, a different entrypoint):
#
#   docker build -t crm-tenancy/crm-operator:0.1.0 .                      # default target
#   docker build --target crm-server -t crm-tenancy/crm-server:0.1.0 .
#
# crm-operator  ENTRYPOINT crm-operator, CMD run: the controller
#               (`crm-operator run --help` lists its flags and variables;
#               `plan` and `crd` work too: `docker run IMAGE plan -`).
# crm-server    ENTRYPOINT crm-server: the CRM each tenant runs, configured
#               by the environment the operator gives its Deployment.
#
# Both run as the distroless nonroot user (65532) and need no writable
# root filesystem: crm-server writes only to its data volume.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p crm-operator -p crm-server \
 && install -D -m 0755 target/release/crm-operator /out/crm-operator \
 && install -D -m 0755 target/release/crm-server /out/crm-server

# Distroless: no shell, no package manager, CA certificates for TLS, and the
# nonroot user (65532) the Deployments' security contexts expect.
FROM gcr.io/distroless/cc-debian12:nonroot AS crm-server
COPY --from=build /out/crm-server /usr/local/bin/crm-server
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/crm-server"]

# Last, so a plain `docker build` makes the operator image.
FROM gcr.io/distroless/cc-debian12:nonroot AS crm-operator
COPY --from=build /out/crm-operator /usr/local/bin/crm-operator
USER 65532:65532
# /metrics, /healthz, /readyz (--metrics-addr).
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/crm-operator"]
CMD ["run"]
