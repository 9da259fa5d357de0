# frozen_string_literal: true

require "time"
require_relative "test_helper"

# The queue workers share: claim, renew_lease and fail with retry.
class TaskQueueTest < Minitest::Test
  include HMSTest::RuntimeFixture

  def test_claims_take_the_most_urgent_then_the_oldest
    low = @rt.tasks.submit(title: "low")
    high = @rt.tasks.submit(title: "high", priority: 5)
    low_too = @rt.tasks.submit(title: "low too")
    claimed = Array.new(3) { @rt.tasks.claim("w") }
    assert_equal [high, low, low_too].map { |t| t["id"] }, claimed.map { |t| t["id"] }
    assert_equal [%w[RUNNING w], 1], [[claimed[0]["status"], claimed[0]["claimed_by"]], claimed[0]["attempts"]]
    assert_nil @rt.tasks.claim("w")
  end

  def test_capabilities_and_labels_choose_the_worker
    gpu = @rt.tasks.submit(title: "render", required_capabilities: [:gpu], labels: { region: "eu" })
    assert_nil @rt.tasks.claim("cpu", capabilities: [:cpu])
    assert_nil @rt.tasks.claim("us", capabilities: [:gpu], labels: { region: "us" })
    task = @rt.tasks.claim("eu", capabilities: %i[gpu cpu], labels: { region: "eu" }, lease_ms: 1500)
    assert_equal gpu["id"], task["id"]
    assert_in_delta 1.5, Time.iso8601(task["lease_expires_at"]) - Time.iso8601(task["updated_at"]), 0.0001
    assert_hms_error(HMS::InvalidArgumentError) { @rt.tasks.claim("") }
    error = assert_hms_error(HMS::DecodeError) { @rt.tasks.claim("w", lease_ms: -1) }
    assert_includes error.message, "lease_ms"
    assert_includes assert_hms_error(HMS::InvalidArgumentError) { @rt.tasks.claim("w", lease_ms: 3_600_001) }.message,
                    "3600000"
  end

  def test_only_the_holder_renews_a_lease
    @rt.tasks.submit(title: "work")
    held = @rt.tasks.claim("holder", lease_ms: 1000)
    renewed = @rt.tasks.renew_lease(held["id"], "holder", lease_ms: 60_000, revision: held["revision"])
    assert_operator Time.iso8601(renewed["lease_expires_at"]), :>, Time.iso8601(held["lease_expires_at"])
    assert_hms_error(HMS::FailedPreconditionError) { @rt.tasks.renew_lease(held["id"], "intruder") }
    assert_equal "holder", @rt.tasks.get(held["id"])["claimed_by"]
  end

  def test_retried_failures_end_in_dead_letter
    submitted = @rt.tasks.submit(title: "flaky", max_attempts: 2)
    first = @rt.tasks.claim("w")
    again = @rt.tasks.fail(first["id"], error: HMS::UnavailableError.new("try again"), retry: true)
    assert_equal ["PENDING", 1], [again["status"], again["attempts"]]
    second = @rt.tasks.claim("w")
    assert_equal submitted["id"], second["id"]
    dead = @rt.tasks.fail(second["id"], error: "still failing", revision: second["revision"], retry: true)
    assert_equal ["DEAD_LETTER", 2, "still failing"], [dead["status"], dead["attempts"], dead.dig("error", "message")]
    assert_nil @rt.tasks.claim("w")
    assert_equal [submitted["id"]], @rt.tasks.each(statuses: [:DEAD_LETTER]).map { |t| t["id"] }
  end
end
