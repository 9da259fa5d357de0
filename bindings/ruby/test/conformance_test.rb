# frozen_string_literal: true

require_relative "test_helper"
require "json"
require "open3"

# The conformance runner (conformance/run.rb, protocol in
# tests/conformance/README.md) on this suite's backend: one JSON line per
# scenario, in file order, with the code the scenario expects, an error
# class of this gem for every failure and the expected message text.
class ConformanceTest < Minitest::Test
  include HMSTest

  SCENARIOS = File.join(ROOT, "tests", "conformance", "scenarios.json")

  def test_runner_reports_every_scenario_as_expected
    doc = JSON.parse(File.read(SCENARIOS, encoding: "UTF-8"))
    runner = File.join(GEM_ROOT, "conformance", "run.rb")
    env = { "HMS_BACKEND" => HMS.backend, "HMS_CONFORMANCE_SCENARIOS" => SCENARIOS }
    out, err, status = Open3.capture3(env, ruby_binary, "-w", runner, SCENARIOS, chdir: ROOT)
    assert status.success?, err
    assert_empty err
    lines = out.lines.map { |l| JSON.parse(l) }
    assert_equal doc["scenarios"].map { |s| s["id"] }, lines.map { |l| l["scenario"] }
    doc["scenarios"].zip(lines) do |scenario, line|
      id = scenario["id"]
      assert_equal "ruby", line["lang"]
      assert_equal scenario["steps"].size - 1, line["step"], id
      assert_equal scenario["expect"], line["code"], "#{id}: #{line['message']}"
      if scenario["expect"] == "OK"
        assert_equal ["", ""], [line["error"], line["message"]], id
      else
        klass = Object.const_get(line["error"])
        assert_operator klass, :<=, HMS::Error, id
        assert_equal HMS::Status.const_get(scenario["expect"]), klass.code, id
      end
      assert_includes line["message"], scenario.fetch("message_contains", ""), id
    end
  end
end
