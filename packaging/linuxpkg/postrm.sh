#!/bin/sh
# ztagent post-remove: deb postrm (remove, purge, upgrade, failed-upgrade,
# abort-install, abort-upgrade, disappear) and rpm %postun (0 = erase,
# 1 = upgrade). Purge deletes the state (enrollment, device key, saved
# parameters, journals), the parameters files and the logs. rpm has no purge:
# `ZTAGENT_PURGE=1 rpm -e ztagent` does the same; a plain erase keeps the
# state, as a deb remove does.
set -e

purge() {
  rm -rf /var/lib/ztagent /etc/ztagent /run/ztagent /var/log/ztagent
  rm -f /etc/default/ztagent /var/log/ztagent.log /var/log/ztagent.err /var/run/ztagent.pid
}

case "$1" in
  purge) purge ;;
  0) if [ "${ZTAGENT_PURGE:-}" = 1 ]; then purge; fi ;;
esac
exit 0
