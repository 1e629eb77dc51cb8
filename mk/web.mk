# mk/web.mk: the web dashboard's tests (issue 12) on their own. `make test-py` runs them too.
#
#   make test-web   tests/web: the routes in-process, then the dashboard in headless Debian
#                   Chromium through Playwright against `camsvc serve` with two emulated
#                   cameras. Screenshots of each view: .cache/test-artefacts/web/*.png
#
# scripts/install.sh (the install target) puts in Debian's chromium when it is missing and
# Playwright for Python with the test extras; `playwright install` is never run.

.PHONY: test-web

test-web: install
	$(PYTEST) -q tests/web
