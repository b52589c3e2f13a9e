// GET /admin/members (the membership: every node with its role and addresses, each group's
// voters) and POST /admin/members (add a voter or a follower, promote, remove: through the log).
import type { FastifyInstance } from 'fastify';
import { parseMemberRequest, type MemberRequest } from '../members';
import type { MembersView } from '../membership';
import { checkQuery } from './request';

/** What the member routes need from the node (server.ts implements it). */
export interface MembersNode {
  membersView(): MembersView;
  changeMembers(req: MemberRequest): Promise<MembersView>;
}

export async function memberRoutes(
  app: FastifyInstance,
  { node }: { node: MembersNode },
): Promise<void> {
  app.get('/admin/members', async (req) => {
    checkQuery(req, []);
    return node.membersView();
  });

  app.post('/admin/members', async (req) => {
    checkQuery(req, []);
    return node.changeMembers(parseMemberRequest(req.body));
  });
}
