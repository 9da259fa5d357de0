# frozen_string_literal: true

# A worker of the fleet test, in Ruby (tests/fleet/README.md):
#   ruby worker.rb STORE_URL PASSWORD_FILE WORKER_ID OUT_FILE LEASE_MS
# Claims tasks from the PostgreSQL store at STORE_URL, completes each with the
# revision of its claim and appends its id to OUT_FILE, one a line, once the
# completion is committed; exits when no task is PENDING or RUNNING.

require_relative "../../../bindings/ruby/lib/hms"

# How long to wait before asking again while other workers' tasks run.
IDLE_S = 0.05

url, password_file, worker_id, out_file, lease_ms = ARGV
store = { postgres: { url: url, password_file: password_file } }
completed = 0
HMS::Runtime.open(name: worker_id, store: store) do |rt|
  File.open(out_file, "a") do |out|
    out.sync = true
    loop do
      task = rt.tasks.claim(worker_id, lease_ms: Integer(lease_ms))
      if task.nil?
        break if rt.tasks.list(statuses: %i[PENDING RUNNING], page_size: 1)["tasks"].to_a.empty?

        sleep IDLE_S
        next
      end
      begin
        rt.tasks.complete(task["id"], result: task["input"], revision: task["revision"])
      rescue HMS::AbortedError
        # The lease ran out and another worker claimed the task: it is theirs
        # to complete now.
        next
      end
      out.write("#{task['id']}\n")
      completed += 1
    end
  end
end
warn "#{worker_id}: completed #{completed}"
