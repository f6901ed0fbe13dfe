# Convenience targets; each is one of the scripts the README documents.
.PHONY: demo test bench lab-up lab-down lint

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

bench:
	bash scripts/install.sh
	.venv/bin/python bench/dataplane.py
	.venv/bin/python bench/udpd_trace.py
	.venv/bin/python bench/hostside.py
	.venv/bin/python bench/controlplane.py
	.venv/bin/python bench/controller.py

lab-up:
	python3 lab/weftlab.py up node1 node2

lab-down:
	python3 lab/weftlab.py down

lint:
	.venv/bin/ansible-lint --profile production
