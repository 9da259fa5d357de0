<?php

declare(strict_types=1);

namespace Hms\Tests;

use Google\Protobuf\Internal\Message;
use Hms\Cbor;
use Hms\Convert;
use Hms\Format;
use Hms\Json;
use Hms\Protobuf;
use Hms\Runtime;
use PHPUnit\Framework\TestCase;

/**
 * The shared golden vectors (tests/vectors/, protocol in its README.md), as
 * every binding runs them. Per case, every comparison byte for byte:
 *  - the files match the manifest (sha256);
 *  - the core converts each of the three files into each format (the six
 *    directions plus the three identities) with the vector's bytes as result;
 *  - PHP-native values: the case's canonical JSON decoded by json_decode into
 *    PHP arrays, encoded by the binding's own CBOR encoder (Hms\Cbor) and by
 *    its JSON encoder (Hms\Json), converted by the core into each format;
 *  - protobuf classes (Google\Protobuf, classes generated into gen/): the
 *    .pb parsed and serialized again by the PHP runtime (through
 *    Hms\Protobuf::serialize, which drops the runtime's one known PHP 8.2
 *    deprecation), converted by the core.
 *
 * PHP has one array type, so json_decode($json, true) turns an empty JSON
 * object into [], which every encoder writes as an empty list. The binding's
 * documented way to write an empty map is new \stdClass(); nativeValue()
 * keeps empty objects that way and is json_decode($json, true) otherwise
 * (asserted). (The pure-PHP protobuf runtime's JSON parser needs ext-bcmath,
 * which is not a dependency of the binding, so its binary parser is used.)
 */
final class VectorsTest extends TestCase
{
    private const FORMATS = ['json' => Format::JSON, 'cbor' => Format::CBOR, 'pb' => Format::PROTOBUF];

    private static function dir(): string
    {
        return dirname(__DIR__, 3) . '/tests/vectors';
    }

    /** @return array<string, mixed> */
    private static function manifest(): array
    {
        static $manifest = null;
        return $manifest ??= json_decode(
            (string) file_get_contents(self::dir() . '/manifest.json'),
            true,
            512,
            JSON_THROW_ON_ERROR,
        );
    }

    /** @return array<string, array{0: array<string, mixed>}> */
    public function cases(): array
    {
        $cases = [];
        foreach (self::manifest()['cases'] as $case) {
            $cases["{$case['type']}/{$case['case']}"] = [$case];
        }
        return $cases;
    }

    /**
     * @param array<string, mixed> $case
     * @return array<string, string> the vector's bytes by extension
     */
    private static function load(array $case): array
    {
        $files = [];
        foreach ($case['files'] as $ext => $rel) {
            $data = file_get_contents(self::dir() . '/' . $rel);
            self::assertIsString($data, "cannot read {$rel}");
            $files[$ext] = $data;
        }
        return $files;
    }

    /**
     * Converts $data (in $from) to every format and compares each answer
     * with the vector, byte for byte.
     *
     * @param array<string, mixed> $case
     * @param array<string, string> $want
     */
    private function assertConvertsToVector(array $case, string $what, string $data, string $from, array $want): void
    {
        foreach (self::FORMATS as $ext => $to) {
            $got = Convert::convert($case['type'], $data, $from, $to);
            $this->assertSame(
                bin2hex($want[$ext]),
                bin2hex($got),
                "{$case['type']}/{$case['case']}: {$what} converted to {$ext}",
            );
        }
    }

    public function testTheManifestCoversTheRequiredTypesAndEdgeCases(): void
    {
        $cases = self::manifest()['cases'];
        $types = array_unique(array_column($cases, 'type'));
        foreach ([
            'hms.sys.v1.EchoRequest',
            'hms.agent.v1.Agent',
            'hms.agent.v1.Task',
            'hms.agent.v1.KnowledgeEntry',
            'hms.agent.lifecycle.v1.LifecycleEvent',
            'hms.v1.Status',
            'hms.v1.RuntimeConfig',
        ] as $type) {
            $this->assertContains($type, $types);
        }
        $tags = array_merge(...array_column($cases, 'tags'));
        foreach (['empty', 'unicode', 'extremes', 'bytes', 'nul', 'maps', 'repeated', 'unknown_enum'] as $tag) {
            $this->assertContains($tag, $tags);
        }
    }

    public function testEveryFileOnDiskIsListed(): void
    {
        $listed = [];
        foreach (self::manifest()['cases'] as $case) {
            foreach ($case['files'] as $rel) {
                $listed[] = $rel;
            }
        }
        $onDisk = [];
        foreach (new \DirectoryIterator(self::dir()) as $dir) {
            if ($dir->isDir() && !$dir->isDot()) {
                foreach (new \DirectoryIterator($dir->getPathname()) as $file) {
                    if ($file->isFile()) {
                        $onDisk[] = $dir->getFilename() . '/' . $file->getFilename();
                    }
                }
            }
        }
        sort($listed);
        sort($onDisk);
        $this->assertSame($listed, $onDisk);
    }

    /**
     * @dataProvider cases
     * @param array<string, mixed> $case
     */
    public function testFilesMatchTheManifest(array $case): void
    {
        foreach (self::load($case) as $ext => $data) {
            $this->assertSame($case['sha256'][$ext], hash('sha256', $data), "{$case['files'][$ext]}");
        }
        $this->assertSame("{$case['type']}/{$case['case']}.json", $case['files']['json']);
    }

    /**
     * @dataProvider cases
     * @param array<string, mixed> $case
     */
    public function testTheCoreConvertsInEveryDirection(array $case): void
    {
        $want = self::load($case);
        foreach (self::FORMATS as $from => $fromFormat) {
            $this->assertConvertsToVector($case, "the .{$from} vector", $want[$from], $fromFormat, $want);
        }
    }

    /**
     * @dataProvider cases
     * @param array<string, mixed> $case
     */
    public function testPhpArraysThroughTheBindingsCborEncoder(array $case): void
    {
        $want = self::load($case);
        $value = self::nativeValue($want['json']);
        $this->assertConvertsToVector($case, 'Hms\Cbor::encode(json_decode(.json))', Cbor::encode($value), Format::CBOR, $want);
    }

    /**
     * @dataProvider cases
     * @param array<string, mixed> $case
     */
    public function testPhpArraysThroughTheBindingsJsonEncoder(array $case): void
    {
        $want = self::load($case);
        $value = self::nativeValue($want['json']);
        $this->assertConvertsToVector($case, 'Hms\Json::encode(json_decode(.json))', Json::encode($value), Format::JSON, $want);
    }

    /**
     * @dataProvider cases
     * @param array<string, mixed> $case
     */
    public function testProtobufClassesReadAndWriteTheVectors(array $case): void
    {
        $want = self::load($case);
        $class = Runtime::messageClass($case['type']);
        /** @var Message $message */
        $message = new $class();
        $message->mergeFromString($want['pb']);
        $this->assertConvertsToVector($case, "{$class} serialized", Protobuf::serialize($message), Format::PROTOBUF, $want);
    }

    /** Plain json_decode($json, true) loses the difference between {} and []. */
    public function testAnEmptyArrayIsNotAnEmptyMessage(): void
    {
        $this->assertSame("\x80", Cbor::encode(json_decode('{}', true)));
        $this->assertSame("\xa0", Cbor::encode(self::nativeValue('{}')));
        $this->assertSame('{}', Json::encode(self::nativeValue('{}')));
        $this->expectException(\Hms\Exception\DecodeException::class);
        Convert::convert('hms.agent.v1.Task', Cbor::encode(['error' => []]), Format::CBOR, Format::JSON);
    }

    /**
     * The JSON as a PHP program writes the value: json_decode into arrays,
     * except that an empty object stays an empty \stdClass (the binding's
     * empty map) rather than [] (an empty list).
     */
    private static function nativeValue(string $json): mixed
    {
        $flags = JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING;
        $value = self::arrays(json_decode($json, false, 512, $flags));
        if (!str_contains($json, '{}')) {
            self::assertSame(json_decode($json, true, 512, $flags), $value);
        }
        return $value;
    }

    private static function arrays(mixed $value): mixed
    {
        if ($value instanceof \stdClass) {
            $vars = get_object_vars($value);
            return $vars === [] ? $value : array_map(self::arrays(...), $vars);
        }
        return is_array($value) ? array_map(self::arrays(...), $value) : $value;
    }
}
