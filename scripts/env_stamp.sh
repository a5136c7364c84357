# Sourced by scripts/bootstrap.sh, which writes this stamp into .venv when the environment is
# built, and by spark-submit.sh, which only compares it: a job runs on a built, current
# environment and never builds one.
env_stamp() {
    cat "$1/pyproject.toml" "$1/constraints.txt" "$1/scripts/bootstrap.sh" | sha256sum | cut -c1-16
}
