#!/usr/bin/env bash
# Builds the CMS Java SDK with javac (JDK 11+, no build tool) and, with "test", runs its JUnit 5 tests.
#   sdks/java/build.sh          compile into build/classes and package build/cms-sdk-<version>.jar
#   sdks/java/build.sh test     also compile and run the tests (prints "java: N passed, N failed")
# JUnit 5's console launcher comes from Debian: apt-get install -y junit5 (or set JUNIT_JAR).
set -euo pipefail
cd "$(dirname "$0")"

JUNIT_JAR="${JUNIT_JAR:-/usr/share/java/junit-platform-console-standalone.jar}"
VERSION="$(sed -n 's/.*String VERSION = "\(.*\)";.*/\1/p' src/main/java/io/cms/sdk/CmsClient.java)"

rm -rf build/classes build/test-classes
mkdir -p build/classes
find src/main/java -name '*.java' > build/main-sources.txt
javac --release 11 -Xlint:all -Werror -encoding UTF-8 -d build/classes @build/main-sources.txt
jar --create --file "build/cms-sdk-${VERSION}.jar" -C build/classes .
echo "built build/cms-sdk-${VERSION}.jar"

if [[ "${1:-}" != "test" ]]; then
  exit 0
fi

if [[ ! -f "$JUNIT_JAR" ]]; then
  echo "JUnit 5 console launcher not found at $JUNIT_JAR: apt-get install -y junit5, or set JUNIT_JAR" >&2
  exit 1
fi
mkdir -p build/test-classes
find src/test/java -name '*.java' > build/test-sources.txt
javac --release 11 -encoding UTF-8 -cp "build/classes:$JUNIT_JAR" -d build/test-classes @build/test-sources.txt

set +e
java -Djava.util.logging.config.file=src/test/resources/logging.properties \
  -jar "$JUNIT_JAR" --class-path "build/classes:build/test-classes" --scan-class-path \
  --disable-banner --details=tree --details-theme=ascii --reports-dir=build/test-reports > build/test-output.txt 2>&1
status=$?
set -e
cat build/test-output.txt
passed=$(sed -n 's/^\[ *\([0-9]*\) tests successful *\]$/\1/p' build/test-output.txt)
failed=$(sed -n 's/^\[ *\([0-9]*\) tests failed *\]$/\1/p' build/test-output.txt)
skipped=$(sed -n 's/^\[ *\([0-9]*\) tests skipped *\]$/\1/p' build/test-output.txt)
echo "java: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
if [[ $status -ne 0 || "${passed:-0}" == "0" ]]; then
  exit 1
fi
