# rowcounts.sh: the rows of every table of a custom-format archive, as the backup recorded them.
#
# archive_row_counts FILE: one JSON object {"table": rows, ...}, counted from the archive's
# own data (the COPY blocks `pg_restore --data-only` prints), so the counts are exactly what
# the dump holds, from the dump's one snapshot. Keys follow restore.sh's ROW_COUNTS_SQL: the
# table's name in public, "schema.table" elsewhere, only plain lower-case names (others are
# summed under "other"). Empty tables count 0. Fails (status 1) when the archive cannot be
# read through.
archive_row_counts() {
    _r_status=$(mktemp_file rowcounts) || return 1
    {
        pg_restore --data-only -f - "$1" 2>/dev/null
        echo $? >"$_r_status"
    } | LC_ALL=C awk '
        function plain(s) { return s ~ /^[a-z_][a-z0-9_]*$/ && length(s) <= 63 }
        inside && $0 == "\\." { inside = 0; next }
        inside { rows[name]++; next }
        /^COPY / {
            name = $2
            sub(/^public\./, "", name)
            n = split(name, part, ".")
            if (!(n == 1 && plain(part[1])) && !(n == 2 && plain(part[1]) && plain(part[2])))
                name = "other"
            if (!(name in rows)) rows[name] = 0
            inside = 1
        }
        END { for (k in rows) printf "%s %d\n", k, rows[k] }' \
        | LC_ALL=C sort \
        | awk 'BEGIN { printf "{" } { printf "%s\"%s\":%s", (NR > 1 ? "," : ""), $1, $2 }
               END { printf "}\n" }'
    _r_code=$(cat "$_r_status" 2>/dev/null)
    rm -f "$_r_status"
    [ "$_r_code" = 0 ]
}
