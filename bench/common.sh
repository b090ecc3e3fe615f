# Sourced by the bench/*.sh scripts that run simclr: builds it once (Release), sets $simclr, and gives a temporary
# $runs folder removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dotnet build src/SimClr.Cli -c Release -v quiet -nologo >/dev/null
simclr=src/SimClr.Cli/bin/Release/net10.0/simclr
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT
