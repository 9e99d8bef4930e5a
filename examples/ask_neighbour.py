# Node-to-node: this node asks another node for a result, directly through the broker.
# Deploy with: plastic run NODE ask_neighbour.py   (edit NEIGHBOUR first)
import plastic

NEIGHBOUR = 'demo-2'

answer = plastic.request(NEIGHBOUR, {'type': 'eval', 'to_evaluate': '2+3', 'need_result': True}, timeout=5)
print(plastic.name, 'asked', NEIGHBOUR, 'for 2+3 and got', answer)
plastic.publish('answers', {'from': NEIGHBOUR, 'answer': answer})
