#!/usr/bin/env bash
# Archives written by pbackup are standard: gzip/bzip2/zstd/unzip test them clean, GNU tar and
# bsdtar list and extract them without complaint, Info-ZIP unzip extracts the zip, and the
# extracted trees equal the source. Also: the .sha256 file passes `sha256sum -c` and the
# manifest is valid JSON.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
setup_work

SRC="$WORK/src"
make_edge_tree "$SRC/edge"

# zip check with Python's zipfile: every CRC, and non-ASCII names marked as UTF-8 (flag bit 11,
# or Info-ZIP's Unicode path extra field) so readers other than Info-ZIP decode them right.
cat >"$WORK/zipcheck.py" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
bad = z.testzip()
assert bad is None, "bad member: %r" % bad
def has_unicode_path_extra(extra):
    j = 0
    while j + 4 <= len(extra):
        hid = int.from_bytes(extra[j:j + 2], "little"); n = int.from_bytes(extra[j + 2:j + 4], "little")
        if hid == 0x7075: return True
        j += 4 + n
    return False
for i in z.infolist():
    ok = i.flag_bits & 0x800 or all(ord(c) < 128 for c in i.filename) or has_unicode_path_extra(i.extra)
    assert ok, "non-ASCII name with neither the UTF-8 flag nor a Unicode path extra field: %r" % i.filename
PY

# Runs a peer tool; fails on a non-zero exit, and on any stderr output (a warning from the
# reference tool means the archive is not quite standard).
peer() {
  local what=$1
  shift
  local rc
  run_rc rc "$@"
  if [ "$rc" -ne 0 ]; then show_last; fail "$what: '$*' exited $rc"; fi
  if [ -s "$WORK/last.err" ]; then show_last; fail "$what: '$*' printed warnings on stderr"; fi
  pass "$what"
}

check_listing() { # FILE_WITH_LIST OPT(nofifo|"") WHAT
  normalize_list <"$1" | grep -vxF edge >"$WORK/l.got" || true
  tree_paths "$SRC/edge" edge "$2" | grep -vxF edge | LC_ALL=C sort -u >"$WORK/l.want"
  if ! diff -u "$WORK/l.want" "$WORK/l.got" >"$WORK/l.diff"; then
    head -n 30 "$WORK/l.diff" >&2
    fail "$3: member list differs from the source tree"
  fi
  pass "$3: member list equals the source tree ($(wc -l <"$WORK/l.got") entries)"
}

i=0
for spec in gzip:2 bzip2:3 zstd:plain zip:2; do
  algo=${spec%%:*} ranks=${spec##*:}
  i=$((i + 1))
  ext="$(algo_ext "$algo")"
  out="$WORK/out_$algo"
  mkdir -p "$out"
  info "$algo archive (ranks: $ranks)"
  if [ "$ranks" = plain ]; then
    expect_ok plain backup --sources "$SRC/edge" --output-dir "$out" --algo "$algo" --block-mb 1 --name peer
  else
    expect_ok "$ranks" backup --sources "$SRC/edge" --output-dir "$out" --algo "$algo" --block-mb 1 --name peer
  fi
  arc="$out/peer.$ext"
  [ -s "$arc" ] || fail "no archive $arc"

  if [ ! -s "$out/peer.$ext.sha256" ]; then
    defer_fail "no peer.$ext.sha256 beside the archive"
  else
    peer "sha256sum -c peer.$ext.sha256" bash -c 'cd "$1" && sha256sum -c --strict "peer.$2.sha256"' _ "$out" "$ext"
    grep -q "peer\.$ext\$" "$out/peer.$ext.sha256" || fail ".sha256 file does not name peer.$ext"
  fi
  peer "manifest is valid JSON" "$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert isinstance(d, dict), "manifest is not a JSON object"' "$out/peer.$ext.manifest.json"

  case "$algo" in
    gzip) peer "gzip -t" gzip -t "$arc" ;;
    bzip2) peer "bzip2 -t" bzip2 -t "$arc" ;;
    zstd) peer "zstd -t" zstd -q -t "$arc" ;;
    zip) peer "unzip -t" unzip -tq "$arc" ;;
  esac

  if [ "$algo" != zip ]; then
    peer "GNU tar -tf" tar -tf "$arc"
    check_listing "$WORK/last.out" "" "GNU tar -tf ($algo)"
    peer "bsdtar -tf" bsdtar -tf "$arc"
    check_listing "$WORK/last.out" "" "bsdtar -tf ($algo)"
    mkdir -p "$WORK/gnutar_$algo"
    peer "GNU tar -xf ($algo)" tar -xf "$arc" -C "$WORK/gnutar_$algo"
    assert_trees_equal "$SRC/edge" "$WORK/gnutar_$algo/edge"
    # decompress with the reference codec tool, then untar: the concatenated blocks form one
    # valid compressed stream
    case "$algo" in
      gzip) dec=(gzip -dc) ;;
      bzip2) dec=(bzip2 -dc) ;;
      zstd) dec=(zstd -dc -q) ;;
    esac
    mkdir -p "$WORK/pipe_$algo"
    peer "${dec[*]} | tar -xf - ($algo)" bash -c '"${@:3}" <"$1" | tar -xf - -C "$2"' _ "$arc" "$WORK/pipe_$algo" "${dec[@]}"
    assert_trees_equal "$SRC/edge" "$WORK/pipe_$algo/edge"
  else
    peer "unzip -Z1" unzip -Z1 "$arc"
    check_listing "$WORK/last.out" nofifo "unzip -Z1"
    mkdir -p "$WORK/unzip"
    peer "unzip -q (extract)" unzip -q "$arc" -d "$WORK/unzip"
    assert_trees_equal "$SRC/edge" "$WORK/unzip/edge" --zip
    mkdir -p "$WORK/bsdtar_zip"
    peer "bsdtar -xf (zip)" bsdtar -xf "$arc" -C "$WORK/bsdtar_zip"
    assert_trees_equal "$SRC/edge" "$WORK/bsdtar_zip/edge" --zip
    peer "python zipfile: testzip, UTF-8 names flagged" "$PYTHON" "$WORK/zipcheck.py" "$arc"
  fi
done
finish_deferred
pass "all peer-tool checks"
