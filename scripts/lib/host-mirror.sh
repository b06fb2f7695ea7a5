# Sourced by the provisioning scripts: host_mirror prints the Debian mirror
# the host's apt uses (the entry for this release's main archive).
host_mirror() {
  local cn; cn=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  {
    # deb822 stanzas -> "URIs<TAB>Suites<TAB>Components"
    for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] || continue; awk 'BEGIN { RS = ""; FS = "\n" }
      { delete v; k = ""
        for (i = 1; i <= NF; i++) { l = $i
          if (l ~ /^#/) continue
          if (l ~ /^[ \t]/) { if (k != "") v[k] = v[k] " " l; continue }
          p = index(l, ":"); if (!p) continue
          k = tolower(substr(l, 1, p - 1)); v[k] = substr(l, p + 1) }
        if (tolower(v["enabled"]) ~ /no/ || v["types"] !~ /(^|[ \t])deb([ \t]|$)/) next
        print v["uris"] "\t" v["suites"] "\t" v["components"] }' "$f"; done
    # one-line format: deb [options] URI SUITE COMPONENT...
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do [ -f "$f" ] || continue; awk '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
        c = ""; for (j = i + 2; j <= NF; j++) c = c " " $j
        print $i "\t" $(i + 1) "\t" c }' "$f"; done
  } | awk -F'\t' -v cn="$cn" '
    { n = split($1, u, " "); split($2, s, " "); hit = 0
      for (j in s) if (s[j] == cn) hit = 1
      for (j = 1; j <= n; j++) if (u[j] ~ /^(https?|file):\/\//) {
        if (hit && (" " $3 " ") ~ /[ \t]main[ \t]/) { print u[j]; found = 1; exit }
        if (fb == "" && u[j] !~ /security/) fb = u[j] } }
    END { if (!found && fb != "") print fb }'
}
