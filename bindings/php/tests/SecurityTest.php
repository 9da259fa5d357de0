<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\CallContext;
use Hms\Credentials;
use Hms\Exception\InvalidArgumentException;
use Hms\Exception\UnauthenticatedException;
use Hms\Format;
use Hms\Runtime;

/** Authentication seen from PHP: default and per-call credentials, redaction. */
final class SecurityTest extends HmsTestCase
{
    private const WHO = 'creds.v1.Who/Am';

    private string $alice = '';
    private string $ops = '';
    private string $tokensFile = '';

    protected function setUp(): void
    {
        $this->alice = self::newToken();
        $this->ops = self::newToken();
        $this->tokensFile = (string) tempnam(sys_get_temp_dir(), 'hms-tokens');
        file_put_contents(
            $this->tokensFile,
            self::tokenLine('alice', 'admin', $this->alice) . "\n" . self::tokenLine('ops-bot', 'ops,read', $this->ops) . "\n",
        );
    }

    protected function tearDown(): void
    {
        parent::tearDown();
        @unlink($this->tokensFile);
    }

    private static function newToken(): string
    {
        return 'hms_' . bin2hex(random_bytes(24));
    }

    /** A line of an API tokens file: principal roles sha256:<salt hex>:<hex of SHA-256(salt . token)>. */
    private static function tokenLine(string $principal, string $roles, string $token): string
    {
        $salt = random_bytes(16);
        return sprintf('%s %s sha256:%s:%s', $principal, $roles, bin2hex($salt), hash('sha256', $salt . $token));
    }

    /** @return array<string, mixed> */
    private function secured(): array
    {
        return ['security' => ['require_authentication' => true, 'api_tokens_file' => $this->tokensFile]];
    }

    /** A runtime with the Who/Am service, which answers what its CallContext says of the caller. */
    private function withWhoAmI(Runtime $rt): Runtime
    {
        $rt->registerService('creds.v1.Who', [
            'Am' => fn (mixed $req, string $method, CallContext $call): array => [
                'principal' => $call->principal,
                'roles' => $call->roles,
                'attributes' => count($call->principalAttributes),
            ],
        ]);
        return $rt;
    }

    public function testCredentialsNeverShowTheirToken(): void
    {
        foreach ([Credentials::apiKey($this->alice, 'alice'), Credentials::bearer($this->alice)] as $creds) {
            ob_start();
            var_dump($creds);
            echo $creds, print_r($creds, true), var_export($creds, true), json_encode($creds);
            $shown = (string) ob_get_clean();
            $this->assertStringNotContainsString($this->alice, $shown);
            $this->assertStringContainsString('<redacted>', $shown);
            $this->assertStringNotContainsString($this->alice, print_r((array) $creds, true));
        }
        $this->assertSame(['scheme' => 'api-key', 'token' => $this->alice, 'principal' => 'alice'], Credentials::apiKey($this->alice, 'alice')->toArray());
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => serialize(Credentials::bearer($this->alice)), 'not serializable');
    }

    public function testCredentialsRefuseAnEmptyToken(): void
    {
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => Credentials::apiKey(''), 'empty');
    }

    public function testWithoutCredentialsACallIsUnauthenticated(): void
    {
        $rt = $this->withWhoAmI($this->runtime($this->secured()));
        $e = $this->assertStatus(UnauthenticatedException::class, 'UNAUTHENTICATED', fn () => $rt->call(self::WHO));
        $this->assertSame('missing', $e->getDetails()['reason'] ?? null);
    }

    public function testAWrongTokenIsUnauthenticatedAndNotEchoed(): void
    {
        $rt = $this->withWhoAmI($this->runtime($this->secured()));
        $wrong = self::newToken();
        $e = $this->assertStatus(
            UnauthenticatedException::class,
            'UNAUTHENTICATED',
            fn () => $rt->call(self::WHO, credentials: Credentials::apiKey($wrong)),
        );
        $this->assertStringNotContainsString($wrong, $e->getMessage() . print_r($e->getDetails(), true) . $e);
    }

    public function testTheDefaultCredentialsReachTheHandler(): void
    {
        $rt = $this->withWhoAmI($this->runtime($this->secured(), credentials: Credentials::apiKey($this->alice)));
        $this->assertEquals(['principal' => 'alice', 'roles' => ['admin'], 'attributes' => 0], $rt->call(self::WHO));
        $this->assertEquals(['principal' => 'alice', 'roles' => ['admin'], 'attributes' => 0], $rt->method(self::WHO)->call([]));
    }

    public function testACallsCredentialsReplaceTheDefaultOnes(): void
    {
        $rt = $this->withWhoAmI($this->runtime($this->secured(), credentials: Credentials::apiKey($this->alice)));
        $ops = Credentials::apiKey($this->ops);
        $expected = ['principal' => 'ops-bot', 'roles' => ['ops', 'read'], 'attributes' => 0];
        $this->assertEquals($expected, $rt->call(self::WHO, credentials: $ops));
        $this->assertEquals($expected, $rt->call(self::WHO, [], ['trace_id' => 't', 'credentials' => $ops]));
        $this->assertEquals($expected, $rt->call(self::WHO, [], format: Format::JSON, credentials: $ops));
        $request = new \Hms\Sys\V1\EchoRequest(['text' => 'typed']);
        $this->assertSame('typed', $rt->call('hms.sys.v1.System/Echo', $request, new \Hms\V1\CallOptions(['trace_id' => 't']))->getText());
        $this->assertStatus(
            UnauthenticatedException::class,
            'UNAUTHENTICATED',
            fn () => $rt->call('hms.sys.v1.System/Echo', $request, ['trace_id' => 't'], credentials: Credentials::apiKey(self::newToken())),
        );
        $this->assertStatus(
            UnauthenticatedException::class,
            'UNAUTHENTICATED',
            fn () => $rt->call('hms.sys.v1.System/Echo', $request, new \Hms\V1\CallOptions(), credentials: Credentials::apiKey(self::newToken())),
        );
    }

    public function testDefaultCredentialsMergeWithAMessageConfig(): void
    {
        $config = new \Hms\V1\RuntimeConfig([
            'name' => 'merged',
            'security' => new \Hms\V1\SecurityConfig(['require_authentication' => true, 'api_tokens_file' => $this->tokensFile]),
        ]);
        $rt = $this->withWhoAmI($this->runtime($config, credentials: Credentials::apiKey($this->ops)));
        $this->assertSame('ops-bot', $rt->call(self::WHO)['principal']);
        $this->assertNull($config->getSecurity()?->getDefaultCredentials());
    }

    public function testDefaultCredentialsNeedAConfigThatIsNotBytes(): void
    {
        $this->assertStatus(
            InvalidArgumentException::class,
            'INVALID_ARGUMENT',
            fn () => new Runtime('', credentials: Credentials::apiKey($this->alice)),
            'not bytes',
        );
    }
}
