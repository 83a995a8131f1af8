# The example's job (run as `sh -c SCRIPT job.sh LINES SLOW`): what a build
# tool prints. LINES lines of output, SLOW=1 for a run of about a minute
# with a background child process (something to cancel, or to quit on).
lines=${1:-100000}
slow=${2:-0}
step=0.03
[ "$slow" = 1 ] && step=1

echo "==> Preparing workspace"
if [ "$slow" = 1 ]; then
  # A child in the job's process tree that would outlive a careless stop.
  sleep 600 &
  child=$!
fi
sleep 0.2

echo "==> Building"
for p in 0 5 10 15 20 25 30 35 40 45 50 55 60 65 70 75 80 85 90 95 100; do
  printf 'building [%3d%%]\r' "$p"
  sleep "$step"
done
printf 'building [100%%] done\n'

echo "==> Emitting $lines lines"
seq -f 'line %.0f' 1 "$lines"

echo "==> Checking"
echo "src/main.rs:12:5: warning: unused variable: \`count\`"
echo "src/parse.rs:40:17: error: mismatched types: expected \`u32\`, found \`&str\`"
echo "==> Done: $lines lines, 2 problems"
[ -n "${child:-}" ] && kill "$child"
exit 1
