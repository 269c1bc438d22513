#!/usr/bin/env bash
# System git against libgit2 for what the hub asks of a policy repository's history: every commit's id,
# author, committer, time, subject and signature. Usage: bash scripts/bench-git.sh [commits] [signed]
# Builds a throwaway repository of `commits` commits (git fast-import), `signed` of them signed with a
# throwaway SSH key, then times
#   - git log with the hub's own format (%G? verifies each signature with ssh-keygen / gpg),
#   - a libgit2 revwalk (libgit2-dev) reading the same fields and extracting each signature
#     (libgit2 has no signature verification: git_commit_extract_signature hands back the bytes).
set -euo pipefail
commits=${1:-20000}
signed=${2:-200}
command -v git >/dev/null && command -v ssh-keygen >/dev/null && dpkg -s libgit2-dev >/dev/null 2>&1 && command -v gcc >/dev/null \
  || { apt-get update -q && apt-get install -y -q git openssh-client libgit2-dev gcc pkg-config; }
work=$(mktemp -d /tmp/policyhub-bench-git-XXXXXX)
trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME=$work
git init -q "$work/repo"
cd "$work/repo"
# one policy file changed per commit, as a team's history looks
python3 - "$commits" > "$work/stream" <<'EOF'
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(1, n + 1):
    body = f"apiVersion: neuvector.com/v1\nkind: NvClusterSecurityRule\nmetadata:\n  name: rule-{i % 50}\nspec:\n  priority: {i}\n"
    msg = f"change rule-{i % 50} to priority {i}\n"
    out.write(f"commit refs/heads/main\nmark :{i}\ncommitter Alice Dev <alice@example.com> {1700000000 + i} +0000\n")
    out.write(f"data {len(msg)}\n{msg}")
    if i > 1: out.write(f"from :{i - 1}\n")
    out.write(f"M 100644 inline policies/global/rule-{i % 50}.yaml\ndata {len(body)}\n{body}\n")
EOF
git fast-import --quiet < "$work/stream"
git checkout -q main
ssh-keygen -q -t ed25519 -N '' -C dev@example.com -f "$work/key"
echo "dev@example.com $(cat "$work/key.pub")" > "$work/allowed_signers"
for i in $(seq 1 "$signed"); do
  echo "# $i" >> policies/global/rule-0.yaml
  git -c user.name=Dev -c user.email=dev@example.com -c gpg.format=ssh -c "user.signingkey=$work/key" commit -q -a -S -m "signed $i"
done
total=$((commits + signed))
format='%H%x00%an <%ae>%x00%cn <%ce>%x00%ct%x00%s%x00%G?%x00%GK%x00%GS'
cat > "$work/walk.c" <<'EOF'
#include <git2.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    git_libgit2_init();
    git_repository *repo; git_revwalk *walk; git_oid oid; long count = 0, signatures = 0, bytes = 0;
    if (git_repository_open(&repo, argv[1]) || git_revwalk_new(&walk, repo) || git_revwalk_push_head(walk)) return 1;
    while (git_revwalk_next(&oid, walk) == 0) {
        git_commit *commit; git_buf sig = {0}, data = {0};
        if (git_commit_lookup(&commit, repo, &oid)) return 1;
        const git_signature *a = git_commit_author(commit), *c = git_commit_committer(commit);
        bytes += strlen(a->name) + strlen(a->email) + strlen(c->name) + strlen(c->email) + strlen(git_commit_summary(commit));
        if (git_commit_extract_signature(&sig, &data, repo, &oid, NULL) == 0) { signatures++; git_buf_dispose(&sig); git_buf_dispose(&data); }
        git_commit_free(commit); count++;
    }
    printf("%ld commits, %ld signatures extracted (%ld bytes of names)\n", count, signatures, bytes);
    return 0;
}
EOF
gcc -O2 -o "$work/walk" "$work/walk.c" $(pkg-config --cflags --libs libgit2)
best() {  # best of three runs of "$@", in ms
  local best=999999999 t s
  for _ in 1 2 3; do s=$(date +%s%N); "$@" > /dev/null; t=$((($(date +%s%N) - s) / 1000000)); [ "$t" -lt "$best" ] && best=$t; done
  echo "$best"
}
git_all=$(best git -c "gpg.ssh.allowedSignersFile=$work/allowed_signers" log --format="$format" main)
git_plain=$(best git log --format='%H%x00%an <%ae>%x00%cn <%ce>%x00%ct%x00%s' main)
git_signed=$(best git -c "gpg.ssh.allowedSignersFile=$work/allowed_signers" log -n "$signed" --format="$format" main)
git_one=$(best git -c "gpg.ssh.allowedSignersFile=$work/allowed_signers" log -1 --format="$format" main)
lib_all=$(best "$work/walk" "$work/repo")
"$work/walk" "$work/repo"
echo "history: $total commits ($signed signed with SSH), $(git count-objects -H -v | awk '/size-pack/{print $2 $3}') packed"
printf '%-58s %8s ms\n' "git log, fields only, every commit" "$git_plain"
printf '%-58s %8s ms\n' "libgit2 revwalk, fields + signature bytes, every commit" "$lib_all"
printf '%-58s %8s ms\n' "git log, fields + verified signature, every commit" "$git_all"
printf '%-58s %8s ms  (%s ms per signature)\n' "git log, the $signed signed commits, verified" "$git_signed" \
  "$(python3 -c "print(round($git_signed/$signed,2))")"
printf '%-58s %8s ms\n' "git log -1 HEAD, verified (what apply runs)" "$git_one"
