# One image, two entrypoints:
#   crm-operator run      the operator (the default command)
#   crm-server            the CRM each tenant runs (the operator sets `command`)
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p crm-operator -p crm-server \
 && install -D -m 0755 target/release/crm-operator /out/crm-operator \
 && install -D -m 0755 target/release/crm-server /out/crm-server

# Distroless: no shell, no package manager, CA certificates for TLS, and the
# nonroot user (65532) the Deployments' security contexts expect.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/crm-operator"]
CMD ["run"]
