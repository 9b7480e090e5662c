#!/bin/sh
# ztagent pre-remove: deb prerm (remove, upgrade, deconfigure,
# failed-upgrade) and rpm %preun (0 = erase, 1 = upgrade). On removal, stops
# the service, unregisters it and puts the OS resolver back (`ztagent
# uninstall` also repairs what a killed agent left); on upgrade, nothing: the
# new package's post-install step restarts the service with the new binary.
set -e

case "$1" in
  remove|deconfigure|0)
    if [ -x /usr/bin/ztagent ]; then /usr/bin/ztagent uninstall; fi ;;
esac
exit 0
