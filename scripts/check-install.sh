#!/usr/bin/env bash
# Build a wheel, install it (not editable) into a fresh venv, and run the README's first steps
# from an empty folder: proves the wheel carries templates/, migrations/ and the compiled
# language catalogs (locale/*/LC_MESSAGES/digest.mo).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$repo"
cd "$work"
mkdir empty && cd empty
printf 'email,name,topics\nana@exemplu.ro,Ana Bălan,sport\nion@bücher.de,Ștefan Mureșan,\n' > people.csv
"$work/venv/bin/digest" --help >/dev/null
"$work/venv/bin/digest" init
"$work/venv/bin/digest" subscribers import people.csv
second="$("$work/venv/bin/digest" subscribers import people.csv)"
echo "$second"
[[ "$second" == "imported 0, updated 0, unchanged 2, invalid 0, duplicate 0, suppressed 0" ]]
"$work/venv/bin/digest" subscribers export | grep -q "Ștefan Mureșan"
"$work/venv/bin/python" -c "import digest.render.environment as t; assert (t.BUILTIN_TEMPLATES / 'email' / 'digest.html.j2').is_file()"
"$work/venv/bin/python" -c "
from digest.config.locales import available_locales, LOCALE_DIR
from digest.render.i18n import language
assert available_locales() == ('en', 'ro'), available_locales()
assert language('ro_RO').gettext('Unsubscribe') == 'Dezabonare'
assert 'site-packages' in str(LOCALE_DIR), LOCALE_DIR
"
# The README's first command, as written, in another empty folder.
mkdir ../demo && cd ../demo
"$work/venv/bin/digest" demo | tee demo.log
grep -q "sent 3, deferred 0, failed 0" demo.log
[ "$(ls outbox/*.eml | wc -l)" -ge 3 ]
echo "install check passed"
